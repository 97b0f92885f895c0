package routertest

import (
	"net/http"
	"testing"

	"github.com/labstack/echo/v4"
)

// TestEcho: echo.WrapMiddleware around v.Middleware and v.RequireScope, as in the README's echo
// recipe.
func TestEcho(t *testing.T) {
	f := newFixture(t)
	v, e := f.v, echo.New()
	getOrder := func(c echo.Context) error {
		s, ok := subject(c.Request(), c.Param("id"))
		if !ok {
			return c.String(http.StatusInternalServerError, "no claims")
		}
		return c.String(http.StatusOK, s)
	}
	e.Use(echo.WrapMiddleware(v.Middleware))
	e.GET("/orders/:id", getOrder, echo.WrapMiddleware(v.RequireScope("orders:read")))
	f.check(t, e)
}
