package routertest

import (
	"net/http"
	"testing"

	"github.com/gin-gonic/gin"
)

// Auth is the README's adapter of net/http middleware to gin, verbatim.
func Auth(mw func(http.Handler) http.Handler) gin.HandlerFunc {
	return func(c *gin.Context) {
		passed := false
		mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			passed, c.Request = true, r // r carries the claims
		})).ServeHTTP(c.Writer, c.Request)
		if !passed {
			c.Abort() // the verifier has written the 400/401/403
		}
	}
}

// TestGin: the README's gin recipe, Auth(v.Middleware) then Auth(v.RequireScope(...)).
func TestGin(t *testing.T) {
	gin.SetMode(gin.TestMode)
	f := newFixture(t)
	v, g := f.v, gin.New()
	getOrder := func(c *gin.Context) {
		s, ok := subject(c.Request, c.Param("id"))
		if !ok {
			c.String(http.StatusInternalServerError, "no claims")
			return
		}
		c.String(http.StatusOK, s)
	}
	g.GET("/orders/:id", Auth(v.Middleware), Auth(v.RequireScope("orders:read")), getOrder)
	f.check(t, g)
}
