package tokenizer

import (
	"errors"
	"fmt"
	"math"
)

// A minimal protobuf decoder for SentencePiece's ModelProto (sentencepiece_model.proto).

// pbReader decodes the protobuf wire format (just what ModelProto needs).
type pbReader struct {
	b []byte
}

func (r *pbReader) varint() (uint64, error) {
	var x uint64
	for i := 0; i < 10; i++ {
		if len(r.b) == 0 {
			return 0, errors.New("protobuf: truncated varint")
		}
		c := r.b[0]
		r.b = r.b[1:]
		x |= uint64(c&0x7F) << (7 * i)
		if c < 0x80 {
			return x, nil
		}
	}
	return 0, errors.New("protobuf: varint too long")
}

// field reads the next key and returns the field number, wire type and, for
// length-delimited and fixed fields, the payload (varints are returned in v).
func (r *pbReader) field() (num int, wire int, v uint64, payload []byte, err error) {
	key, err := r.varint()
	if err != nil {
		return 0, 0, 0, nil, err
	}
	num, wire = int(key>>3), int(key&7)
	if num == 0 {
		return 0, 0, 0, nil, errors.New("protobuf: field number 0")
	}
	switch wire {
	case 0:
		v, err = r.varint()
	case 1:
		if len(r.b) < 8 {
			return 0, 0, 0, nil, errors.New("protobuf: truncated fixed64")
		}
		payload, r.b = r.b[:8], r.b[8:]
	case 2:
		var n uint64
		if n, err = r.varint(); err != nil {
			return
		}
		if n > uint64(len(r.b)) {
			return 0, 0, 0, nil, errors.New("protobuf: truncated bytes field")
		}
		payload, r.b = r.b[:n], r.b[n:]
	case 5:
		if len(r.b) < 4 {
			return 0, 0, 0, nil, errors.New("protobuf: truncated fixed32")
		}
		payload, r.b = r.b[:4], r.b[4:]
	default:
		return 0, 0, 0, nil, fmt.Errorf("protobuf: unsupported wire type %d", wire)
	}
	return
}

func decodeModelProto(data []byte) (*spmProto, error) {
	p := &spmProto{
		modelType: 1, unkID: 0, bosID: 1, eosID: 2,
		addDummyPrefix: true, removeExtraWS: true, escapeWS: true,
	}
	r := pbReader{data}
	for len(r.b) > 0 {
		num, wire, _, payload, err := r.field()
		if err != nil {
			return nil, err
		}
		switch {
		case num == 1 && wire == 2:
			sp, err := decodePiece(payload)
			if err != nil {
				return nil, fmt.Errorf("pieces[%d]: %w", len(p.pieces), err)
			}
			p.pieces = append(p.pieces, sp)
		case num == 2 && wire == 2:
			if err := p.decodeTrainerSpec(payload); err != nil {
				return nil, fmt.Errorf("trainer_spec: %w", err)
			}
		case num == 3 && wire == 2:
			if err := p.decodeNormalizerSpec(payload); err != nil {
				return nil, fmt.Errorf("normalizer_spec: %w", err)
			}
		}
	}
	return p, nil
}

func decodePiece(b []byte) (spmPiece, error) {
	sp := spmPiece{typ: spmNormal}
	r := pbReader{b}
	for len(r.b) > 0 {
		num, wire, v, payload, err := r.field()
		if err != nil {
			return sp, err
		}
		switch {
		case num == 1 && wire == 2:
			sp.piece = string(payload)
		case num == 2 && wire == 5:
			sp.score = math.Float32frombits(uint32(payload[0]) | uint32(payload[1])<<8 | uint32(payload[2])<<16 | uint32(payload[3])<<24)
		case num == 3 && wire == 0:
			sp.typ = int(int32(v))
		}
	}
	return sp, nil
}

func (p *spmProto) decodeTrainerSpec(b []byte) error {
	r := pbReader{b}
	for len(r.b) > 0 {
		num, wire, v, payload, err := r.field()
		if err != nil {
			return err
		}
		if wire == 0 {
			switch num {
			case 3:
				p.modelType = int(int32(v))
			case 24:
				p.treatWSAsSuffix = v != 0
			case 35:
				p.byteFallback = v != 0
			case 40:
				p.unkID = int(int32(v))
			case 41:
				p.bosID = int(int32(v))
			case 42:
				p.eosID = int(int32(v))
			}
		} else if wire == 2 && num == 44 {
			p.unkSurface = string(payload)
		}
	}
	return nil
}

func (p *spmProto) decodeNormalizerSpec(b []byte) error {
	r := pbReader{b}
	for len(r.b) > 0 {
		num, wire, v, payload, err := r.field()
		if err != nil {
			return err
		}
		switch {
		case num == 1 && wire == 2:
			p.normName = string(payload)
		case num == 2 && wire == 2:
			p.charsmap = payload
		case num == 3 && wire == 0:
			p.addDummyPrefix = v != 0
		case num == 4 && wire == 0:
			p.removeExtraWS = v != 0
		case num == 5 && wire == 0:
			p.escapeWS = v != 0
		}
	}
	return nil
}
