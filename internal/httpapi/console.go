package httpapi

import (
	"io/fs"
	"net/http"
	"path"
	"strings"

	"github.com/labstack/echo/v4"

	"enterprise-automation/gen/console"
	"enterprise-automation/internal/apperr"
)

// consoleCSP allows the console nothing but its own files and its own API.
const consoleCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// registerConsole serves the web console's embedded build at /console/. Its assets have
// content-hashed names and are cached for good; any other path under /console/ is one of
// the console's own screens and gets index.html, which is never cached.
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
	s.echo.Match(methods, "/console", serveIndex)
	s.echo.Match(methods, "/console/*", func(c echo.Context) error {
		name := path.Clean(c.Param("*"))
		if !strings.HasPrefix(name, "assets/") {
			return serveIndex(c)
		}
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
