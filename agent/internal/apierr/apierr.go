// Package apierr turns what goes wrong into the agent's one error shape,
// {"error":{"code","message","path"}}, with an HTTP status. Codes are errno
// names where the kernel decided (EACCES, EROFS, ENOENT, ...), so a client
// sees exactly why the workload user may not touch a path.
package apierr

import (
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"syscall"
)

// Codes that are not errno names.
const (
	Unauthorized   = "UNAUTHORIZED"
	BadRequest     = "BAD_REQUEST"
	NotFound       = "NOT_FOUND"      // no such route or process
	Conflict       = "CONFLICT"       // e.g. stdin on a process started without it
	NotExecutable  = "NOT_EXECUTABLE" // argv[0] not found or not runnable
	TooManyProcs   = "TOO_MANY_PROCESSES"
	Internal       = "INTERNAL"
	MethodNotAllow = "METHOD_NOT_ALLOWED"
)

type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Path    string `json:"path,omitempty"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func New(status int, code, msg string) *Error {
	return &Error{Status: status, Code: code, Message: msg}
}

var errnoStatus = map[syscall.Errno]struct {
	code   string
	status int
}{
	syscall.ENOENT:       {"ENOENT", http.StatusNotFound},
	syscall.EACCES:       {"EACCES", http.StatusForbidden},
	syscall.EPERM:        {"EPERM", http.StatusForbidden},
	syscall.EROFS:        {"EROFS", http.StatusForbidden},
	syscall.EEXIST:       {"EEXIST", http.StatusConflict},
	syscall.ENOTDIR:      {"ENOTDIR", http.StatusBadRequest},
	syscall.EISDIR:       {"EISDIR", http.StatusBadRequest},
	syscall.ENOTEMPTY:    {"ENOTEMPTY", http.StatusConflict},
	syscall.EINVAL:       {"EINVAL", http.StatusBadRequest},
	syscall.ENOSPC:       {"ENOSPC", http.StatusInsufficientStorage},
	syscall.EDQUOT:       {"EDQUOT", http.StatusInsufficientStorage},
	syscall.EXDEV:        {"EXDEV", http.StatusConflict},
	syscall.ELOOP:        {"ELOOP", http.StatusBadRequest},
	syscall.ENAMETOOLONG: {"ENAMETOOLONG", http.StatusBadRequest},
	syscall.ETXTBSY:      {"ETXTBSY", http.StatusConflict},
	syscall.EBUSY:        {"EBUSY", http.StatusConflict},
	syscall.EMFILE:       {"EMFILE", http.StatusServiceUnavailable},
	syscall.EAGAIN:       {"EAGAIN", http.StatusServiceUnavailable},
	syscall.ENOEXEC:      {"ENOEXEC", http.StatusBadRequest},
}

// From maps any error to an *Error; errno-carrying errors keep their errno name.
func From(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	out := &Error{Status: http.StatusInternalServerError, Code: Internal, Message: err.Error()}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		out.Path = pe.Path
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		out.Path = le.Old
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if m, ok := errnoStatus[errno]; ok {
			out.Code, out.Status = m.code, m.status
		}
		out.Message = errno.Error()
		if out.Path != "" {
			out.Message = out.Path + ": " + errno.Error()
		}
	}
	if errors.Is(err, exec.ErrNotFound) {
		out.Code, out.Status = NotExecutable, http.StatusBadRequest
	}
	return out
}

// Write sends err as the agent's error shape.
func Write(w http.ResponseWriter, err error) {
	e := From(err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(map[string]*Error{"error": e})
}
