// Package logx writes the same JSON lines as the operator's pino logger
// (level as a word, ISO time, msg), so the backends and tests read the Go
// sidecar's log exactly as they read the TypeScript one's.
package logx

import (
	"io"
	"log/slog"
	"os"
	"strings"
)

func New(w io.Writer) *slog.Logger {
	if w == nil {
		w = os.Stdout
	}
	level := slog.LevelInfo
	if strings.EqualFold(os.Getenv("LOG_LEVEL"), "debug") {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.LevelKey {
				return slog.String("level", levelName(a.Value.Any().(slog.Level)))
			}
			return a
		},
	}))
}

func levelName(l slog.Level) string {
	switch {
	case l >= slog.LevelError+4:
		return "fatal"
	case l >= slog.LevelError:
		return "error"
	case l >= slog.LevelWarn:
		return "warn"
	case l >= slog.LevelInfo:
		return "info"
	}
	return "debug"
}

// Fatal is pino's fatal level.
const Fatal = slog.LevelError + 4
