package httpapi

import (
	"io/fs"
	"net/http"

	"github.com/labstack/echo/v4"

	"enterprise-automation/gen/console"
	"enterprise-automation/internal/apperr"
)

// consoleCSP allows the console nothing but its own files and its own API.
const consoleCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// registerConsole serves the web console's embedded build at /console/. Its assets have
// content-hashed names and are cached for good; the screens' paths (one or two segments
// under /console/) get index.html, which is revalidated on every load.
func (s *Server) registerConsole() error {
	dist, err := fs.Sub(console.Dist, "dist")
	if err != nil {
		return err
	}
	index, err := fs.ReadFile(dist, "index.html")
	if err != nil {
		return err
	}
	assets := http.FileServer(http.FS(dist))
	serveIndex := func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Cache-Control", "no-cache")
		h.Set("Content-Security-Policy", consoleCSP)
		h.Set("Referrer-Policy", "no-referrer")
		return c.HTMLBlob(http.StatusOK, index)
	}
	methods := []string{http.MethodGet, http.MethodHead}
	// The screens: /console/tasks, /console/runs/12, … (the console routes them itself).
	for _, p := range []string{"/console", "/console/:screen", "/console/:screen/:id"} {
		s.echo.Match(methods, p, serveIndex)
	}
	s.echo.Match(methods, "/console/assets/:file", func(c echo.Context) error {
		name := "assets/" + c.Param("file")
		if st, err := fs.Stat(dist, name); err != nil || st.IsDir() {
			return apperr.E(apperr.NotFound, "no such console asset")
		}
		c.Response().Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		c.Request().URL.Path = "/" + name
		assets.ServeHTTP(c.Response(), c.Request())
		return nil
	})
	return nil
}
