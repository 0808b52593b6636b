package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"
)

// errClientGone is a failed write to a streaming client.
var errClientGone = errors.New("server: the client stopped reading")

// sseWriteTimeout bounds one event's write: a client that stays connected
// but stops reading must not hold its handler forever.
const sseWriteTimeout = 30 * time.Second

// sseWriter writes server-sent events, "data: {json}\n\n", flushed one by
// one, ending with "data: [DONE]" as OpenAI's streams do.
type sseWriter struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	err error
}

func newSSE(w http.ResponseWriter) *sseWriter {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no") // no proxy buffering of the stream
	w.WriteHeader(http.StatusOK)
	s := &sseWriter{w: w, rc: http.NewResponseController(w)}
	s.flush()
	return s
}

func (s *sseWriter) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.write(append(append([]byte("data: "), b...), '\n', '\n'))
}

func (s *sseWriter) done() { s.write([]byte("data: [DONE]\n\n")) }

func (s *sseWriter) write(b []byte) error {
	if s.err != nil {
		return s.err
	}
	s.rc.SetWriteDeadline(time.Now().Add(sseWriteTimeout))
	if _, err := s.w.Write(b); err != nil {
		s.err = errClientGone
		return s.err
	}
	s.flush()
	return s.err
}

func (s *sseWriter) flush() {
	if err := s.rc.Flush(); err != nil {
		s.err = errClientGone
	}
}
