package kvcache

import "unsafe"

func uintptrOf32(s []float32) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(s))) }
func uintptrOf16(s []uint16) uintptr  { return uintptr(unsafe.Pointer(unsafe.SliceData(s))) }
func uintptrOf8(s []int8) uintptr     { return uintptr(unsafe.Pointer(unsafe.SliceData(s))) }
