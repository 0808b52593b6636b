package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/lorakit/lorakit/engine"
	"github.com/lorakit/lorakit/server/openai"
)

// apiError maps an engine or registry error to an API error with the
// status clients act on: 4xx are the caller's to fix, 429 and 503 are worth
// retrying later.
func apiError(err error, model, promptParam string) *openai.Error {
	var (
		ce *engine.ContextLengthError
		le *engine.LoadError
		oe *openai.Error
	)
	switch {
	case errors.As(err, &oe):
		return oe
	case errors.Is(err, engine.ErrQueueFull):
		return &openai.Error{Status: http.StatusTooManyRequests, Type: openai.TypeRateLimit, Code: "queue_full",
			Message: "the server is busy: the request queue is full; retry later"}
	case errors.Is(err, engine.ErrShuttingDown):
		return &openai.Error{Status: http.StatusServiceUnavailable, Type: openai.TypeUnavailable, Code: "shutting_down",
			Message: "the server is shutting down"}
	case errors.As(err, &ce):
		param := "max_tokens"
		if ce.Prompt >= ce.Limit {
			param = promptParam
		}
		return &openai.Error{Status: http.StatusBadRequest, Type: openai.TypeInvalidRequest, Code: "context_length_exceeded",
			Param: param, Message: ce.Error()}
	case errors.Is(err, engine.ErrUnknownAdapter):
		return &openai.Error{Status: http.StatusNotFound, Type: openai.TypeNotFound, Code: "model_not_found", Param: "model",
			Message: fmt.Sprintf("the model %s does not exist: it is neither the base model nor an adapter", quote(model))}
	case errors.Is(err, engine.ErrInvalidName):
		return &openai.Error{Status: http.StatusBadRequest, Type: openai.TypeInvalidRequest, Code: "invalid_name", Param: "name", Message: err.Error()}
	case errors.Is(err, engine.ErrOutsideDir):
		return &openai.Error{Status: http.StatusForbidden, Type: openai.TypePermission, Code: "path_outside_dir", Param: "path", Message: err.Error()}
	case errors.As(err, &le):
		return &openai.Error{Status: http.StatusBadRequest, Type: openai.TypeInvalidRequest, Code: "adapter_invalid", Param: "model", Message: le.Error()}
	case errors.Is(err, engine.ErrInvalid):
		return &openai.Error{Status: http.StatusBadRequest, Type: openai.TypeInvalidRequest, Message: err.Error()}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &openai.Error{Status: 499, Type: openai.TypeInvalidRequest, Code: "cancelled", Message: "the request was cancelled"}
	}
	return &openai.Error{Status: http.StatusInternalServerError, Type: openai.TypeServer, Message: err.Error()}
}

// writeError answers with OpenAI's error shape.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, e *openai.Error) {
	if e.Status == http.StatusTooManyRequests || e.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	if e.Status >= 500 {
		s.log.Warn("request failed", "request_id", info(r).id, "status", e.Status, "err", e.Message)
	}
	writeJSON(w, e.Status, e.Body())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"message":"encoding the response failed","type":"server_error","param":null,"code":null}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
