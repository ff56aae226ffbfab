package httpapi

import (
	"net/http"

	"enterprise-automation/gen/db"

	"github.com/getkin/kin-openapi/routers"
	"github.com/labstack/echo/v4"
)

// Internals exposed to the external test package (benchmarks).
var (
	ToProblem = toProblem
	ToTask    = toTask
	// VisitTaskPage writes a page of tasks as ListTasks answers it.
	VisitTaskPage = func(w http.ResponseWriter, items []db.Task) error {
		return taskPageResponse{items: items, page: 1, pageSize: int32(len(items)), total: int64(len(items)) * 10, totalPages: 10}.VisitListTasksResponse(w)
	}
	ValidationError   = validationError
	ValidationOptions = validationOptions
)

// ValidateMiddleware returns the server's contract validation middleware alone.
func (s *Server) ValidateMiddleware() echo.MiddlewareFunc { return s.validate }

// Route returns the contract route the middleware validates an operation against, keyed
// by method and Echo path template ("/api/v1/tasks/:task_id"); nil when there is none.
func (s *Server) Route(method, echoPath string) *routers.Route {
	if op, ok := s.ops[routeKey(method, echoPath)]; ok {
		return op.route
	}
	return nil
}
