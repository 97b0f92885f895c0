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
	e := echo.New()
	e.Use(echo.WrapMiddleware(f.v.Middleware))
	e.GET("/orders/:id", func(c echo.Context) error {
		s, ok := subject(c.Request(), c.Param("id"))
		if !ok {
			return c.String(http.StatusInternalServerError, "no claims")
		}
		return c.String(http.StatusOK, s)
	}, echo.WrapMiddleware(f.v.RequireScope("orders:read")))
	f.check(t, e)
}
