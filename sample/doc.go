// Package sample picks the next token from a vector of logits.
//
// The pipeline follows Hugging Face transformers' generate(): the
// RepetitionPenaltyLogitsProcessor runs first, then the warpers in the order
// generate() builds them (TemperatureLogitsWarper, TopKLogitsWarper,
// TopPLogitsWarper, MinPLogitsWarper), then softmax and a multinomial draw.
// Where HF is silent (NaN/Inf logits, exact ties) the choices are documented
// on the functions below; they are deterministic so that a fixed Seed always
// reproduces the same tokens.
package sample
