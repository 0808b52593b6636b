package server

import (
	"net/http"

	"github.com/lorakit/lorakit/server/openai"
)

// handleModels lists the base model and every adapter (rescanning the
// adapter directory, so new folders show up).
func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	list := openai.ModelList{Object: "list", Data: []openai.Model{s.baseModel()}}
	if s.cfg.Registry != nil {
		infos, err := s.cfg.Registry.List()
		if err != nil {
			s.writeError(w, r, apiError(err, "", ""))
			return
		}
		for _, in := range infos {
			list.Data = append(list.Data, openai.Model{ID: in.Name, Object: "model", Created: s.started, OwnedBy: "lorakit",
				Root: s.cfg.BaseName, Parent: s.cfg.BaseName})
		}
	}
	writeJSON(w, http.StatusOK, list)
}

// handleModel describes one model.
func (s *Server) handleModel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if id == s.cfg.BaseName {
		writeJSON(w, http.StatusOK, s.baseModel())
		return
	}
	if s.cfg.Registry != nil {
		infos, err := s.cfg.Registry.List()
		if err != nil {
			s.writeError(w, r, apiError(err, "", ""))
			return
		}
		for _, in := range infos {
			if in.Name == id {
				writeJSON(w, http.StatusOK, openai.Model{ID: id, Object: "model", Created: s.started, OwnedBy: "lorakit", Root: s.cfg.BaseName, Parent: s.cfg.BaseName})
				return
			}
		}
	}
	s.writeError(w, r, &openai.Error{Status: http.StatusNotFound, Type: openai.TypeNotFound, Code: "model_not_found", Param: "model",
		Message: "the model " + quote(id) + " does not exist"})
}

func (s *Server) baseModel() openai.Model {
	return openai.Model{ID: s.cfg.BaseName, Object: "model", Created: s.started, OwnedBy: "lorakit", Root: s.cfg.BaseName}
}

// handleAdapterList (admin) shows every adapter with its memory state.
func (s *Server) handleAdapterList(w http.ResponseWriter, r *http.Request) {
	if !s.adminReady(w, r) {
		return
	}
	infos, err := s.cfg.Registry.List()
	if err != nil {
		s.writeError(w, r, apiError(err, "", ""))
		return
	}
	out := struct {
		Object string                 `json:"object"`
		Data   []openai.AdapterStatus `json:"data"`
	}{Object: "list", Data: []openai.AdapterStatus{}}
	for _, in := range infos {
		out.Data = append(out.Data, openai.AdapterStatus{ID: in.Name, Object: "adapter", Path: in.Path, Loaded: in.Loaded, Bytes: in.Bytes})
	}
	writeJSON(w, http.StatusOK, out)
}

// handleAdapterLoad (admin) loads or reloads an adapter now: {"name", "path"}.
func (s *Server) handleAdapterLoad(w http.ResponseWriter, r *http.Request) {
	if !s.adminReady(w, r) {
		return
	}
	var req openai.AdapterRequest
	if e := s.decode(w, r, &req); e != nil {
		s.writeError(w, r, e)
		return
	}
	if req.Name == s.cfg.BaseName {
		s.writeError(w, r, openai.Invalid("name", "%s is the base model's name", quote(req.Name)))
		return
	}
	in, err := s.cfg.Registry.Load(req.Name, req.Path)
	if err != nil {
		s.writeError(w, r, apiError(err, req.Name, ""))
		return
	}
	s.log.Info("adapter loaded by admin", "request_id", info(r).id, "adapter", in.Name, "path", in.Path, "bytes", in.Bytes)
	writeJSON(w, http.StatusOK, openai.AdapterStatus{ID: in.Name, Object: "adapter", Path: in.Path, Loaded: in.Loaded, Bytes: in.Bytes})
}

// handleAdapterUnload (admin) drops an adapter from memory.
func (s *Server) handleAdapterUnload(w http.ResponseWriter, r *http.Request) {
	if !s.adminReady(w, r) {
		return
	}
	name := r.PathValue("name")
	if err := s.cfg.Registry.Unload(name); err != nil {
		s.writeError(w, r, apiError(err, name, ""))
		return
	}
	s.log.Info("adapter unloaded by admin", "request_id", info(r).id, "adapter", name)
	writeJSON(w, http.StatusOK, openai.AdapterStatus{ID: name, Object: "adapter", Deleted: true})
}

func (s *Server) adminReady(w http.ResponseWriter, r *http.Request) bool {
	if s.cfg.Registry == nil {
		s.writeError(w, r, &openai.Error{Status: http.StatusNotFound, Type: openai.TypeNotFound, Message: "this server has no adapter registry"})
		return false
	}
	return true
}

func quote(s string) string {
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return "\"" + s + "\""
}
