package engine

import (
	"context"
	"strings"
	"sync"
)

// Stream is the output of one submitted request. The scheduler appends text
// without ever blocking on the reader (a slow client must not stall the
// batch); the reader takes whatever accumulated since its last call.
type Stream struct {
	cancel context.CancelFunc

	mu      sync.Mutex
	pending strings.Builder
	done    bool
	res     Result
	err     error
	ready   chan struct{} // capacity 1: "something changed"
}

func newStream(cancel context.CancelFunc) *Stream {
	return &Stream{cancel: cancel, ready: make(chan struct{}, 1)}
}

// push adds final text (scheduler side).
func (s *Stream) push(text string) {
	if text == "" {
		return
	}
	s.mu.Lock()
	s.pending.WriteString(text)
	s.mu.Unlock()
	s.signal()
}

// close ends the stream with a result or an error (scheduler side).
func (s *Stream) close(res Result, err error) {
	s.mu.Lock()
	s.done, s.res, s.err = true, res, err
	s.mu.Unlock()
	s.signal()
}

func (s *Stream) signal() {
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// Next waits for new text. It returns the text that became final since the
// last call, and done once the request has ended and all its text was
// returned; then Result tells why it ended. err is the request's failure
// (e.g. ErrShuttingDown) or ctx's error.
func (s *Stream) Next(ctx context.Context) (text string, done bool, err error) {
	for {
		s.mu.Lock()
		text = s.pending.String()
		s.pending.Reset()
		done, err = s.done, s.err
		s.mu.Unlock()
		if text != "" || done {
			if done && text != "" {
				// Hand out the text first; the next call reports the end.
				s.signal()
				return text, false, nil
			}
			return text, done, err
		}
		select {
		case <-s.ready:
		case <-ctx.Done():
			s.Cancel()
			return "", false, ctx.Err()
		}
	}
}

// Result is the final result, valid once Next reported done.
func (s *Stream) Result() Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.res
}

// Wait reads the stream to its end and returns the result.
func (s *Stream) Wait(ctx context.Context) (Result, error) {
	for {
		_, done, err := s.Next(ctx)
		if err != nil {
			return s.Result(), err
		}
		if done {
			return s.Result(), nil
		}
	}
}

// Cancel abandons the request: its batch slot is freed at the next step.
func (s *Stream) Cancel() { s.cancel() }
