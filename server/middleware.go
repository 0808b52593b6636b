package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"math/rand/v2"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/lorakit/lorakit/server/openai"
)

// reqInfo travels with a request: its id for logs and the labels of its
// metrics, which handlers fill in as they learn them.
type reqInfo struct {
	id       string
	endpoint string
	model    string // "-" until the handler resolves a known model
}

type ctxKey struct{}

func info(r *http.Request) *reqInfo {
	if in, ok := r.Context().Value(ctxKey{}).(*reqInfo); ok {
		return in
	}
	return &reqInfo{id: "-", endpoint: "other", model: "-"}
}

// middleware gives every request an id (X-Request-Id, the client's if it is
// sane), recovers panics into a 500, counts and logs the request.
func (s *Server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in := &reqInfo{id: s.requestID(r), endpoint: endpointLabel(r.URL.Path), model: "-"}
		w.Header().Set("X-Request-Id", in.id)
		sw := &statusWriter{ResponseWriter: w}
		t0 := time.Now()
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.Error("panic in handler", "request_id", in.id, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				if sw.status == 0 {
					s.writeError(sw, r, &openai.Error{Status: http.StatusInternalServerError, Type: openai.TypeServer, Message: "internal error"})
				}
			}
			status := sw.status
			if status == 0 {
				status = 499 // nothing written: the client went away first
			}
			d := time.Since(t0)
			s.met.observe(in.endpoint, in.model, status, d)
			level := s.log.Info
			if status >= 500 {
				level = s.log.Warn
			}
			level("request", "request_id", in.id, "method", r.Method, "path", r.URL.Path, "model", in.model,
				"status", status, "duration", d, "remote", r.RemoteAddr)
		}()
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), ctxKey{}, in)))
	})
}

// requestID keeps a client's X-Request-Id when it is short and plain (it
// ends up in logs), else makes one.
func (s *Server) requestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); id != "" && len(id) <= 64 && plain(id) {
		return id
	}
	return fmt.Sprintf("req-%x-%d", rand.Uint32(), s.reqNum.Add(1))
}

func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// endpointLabel maps a path to a bounded set of metric labels.
func endpointLabel(path string) string {
	switch {
	case path == "/v1/completions", path == "/v1/chat/completions", path == "/v1/models", path == "/v1/adapters",
		path == "/healthz", path == "/readyz", path == "/metrics":
		return path
	case strings.HasPrefix(path, "/v1/models/"):
		return "/v1/models/{id}"
	case strings.HasPrefix(path, "/v1/adapters/"):
		return "/v1/adapters/{name}"
	}
	return "other"
}

// statusWriter records the status; Unwrap lets http.ResponseController
// reach the real writer's Flush.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// auth checks "Authorization: Bearer KEY": API or admin keys on the
// inference API (when API keys are configured), admin keys only on the
// admin API (disabled without one).
func (s *Server) auth(admin bool, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key, given := bearer(r)
		isAdmin := given && matchKey(key, s.cfg.AdminKeys)
		var err *openai.Error
		switch {
		case admin && len(s.cfg.AdminKeys) == 0:
			err = &openai.Error{Status: http.StatusForbidden, Type: openai.TypePermission, Code: "admin_disabled",
				Message: "the admin API is disabled: start the server with an admin key"}
		case admin && !isAdmin && given && matchKey(key, s.cfg.APIKeys):
			err = &openai.Error{Status: http.StatusForbidden, Type: openai.TypePermission, Code: "admin_key_required",
				Message: "this endpoint needs the admin key"}
		case admin && !isAdmin, !admin && len(s.cfg.APIKeys) > 0 && !isAdmin && !(given && matchKey(key, s.cfg.APIKeys)):
			msg := "invalid API key"
			if !given {
				msg = "missing API key: send Authorization: Bearer KEY"
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="lorakit"`)
			err = &openai.Error{Status: http.StatusUnauthorized, Type: openai.TypeAuthentication, Code: "invalid_api_key", Message: msg}
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		h(w, r)
	}
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:]), true
	}
	return "", false
}

// matchKey compares in constant time (hashes first, so lengths leak nothing).
func matchKey(key string, keys []string) bool {
	hk := sha256.Sum256([]byte(key))
	ok := 0
	for _, k := range keys {
		hc := sha256.Sum256([]byte(k))
		ok |= subtle.ConstantTimeCompare(hk[:], hc[:])
	}
	return ok == 1
}
