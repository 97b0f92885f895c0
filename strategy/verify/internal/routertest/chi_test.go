package routertest

import (
	"net/http"
	"testing"

	"github.com/go-chi/chi/v5"
)

// TestChi: r.Use(v.Middleware) and r.With(v.RequireScope(...)) as in the README's chi recipe.
func TestChi(t *testing.T) {
	f := newFixture(t)
	r := chi.NewRouter()
	r.Use(f.v.Middleware)
	r.With(f.v.RequireScope("orders:read")).Get("/orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		s, ok := subject(r, chi.URLParam(r, "id"))
		if !ok {
			http.Error(w, "no claims", http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte(s))
	})
	f.check(t, r)
}
