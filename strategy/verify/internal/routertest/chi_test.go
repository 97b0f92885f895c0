package routertest

import (
	"net/http"
	"testing"

	"github.com/go-chi/chi/v5"
)

// TestChi: r.Use(v.Middleware) and r.With(v.RequireScope(...)) as in the README's chi recipe.
func TestChi(t *testing.T) {
	f := newFixture(t)
	v, r := f.v, chi.NewRouter()
	getOrder := func(w http.ResponseWriter, r *http.Request) {
		s, ok := subject(r, chi.URLParam(r, "id"))
		if !ok {
			http.Error(w, "no claims", http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte(s))
	}
	r.Use(v.Middleware)
	r.With(v.RequireScope("orders:read")).Get("/orders/{id}", getOrder)
	f.check(t, r)
}
