// Package routertest checks, in its tests, that verify's middleware plugs into third-party
// routers exactly as the README shows. It lives outside package verify, whose import graph (and
// test import graph) must stay go-jose and the standard library only; it has no code of its own.
package routertest
