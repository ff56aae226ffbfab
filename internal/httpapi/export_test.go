package httpapi

import (
	"net/http"

	"enterprise-automation/internal/task"

	"github.com/getkin/kin-openapi/routers"
	"github.com/labstack/echo/v4"
)

// Internals exposed to the external test package (benchmarks).
var (
	ToProblem = toProblem
	ToTask    = toTask
	// VisitTaskPage writes a page of tasks as ListTasks answers it.
	VisitTaskPage = func(w http.ResponseWriter, items []task.Task) error {
		return taskPageResponse{Items: items, Page: 1, PageSize: int32(len(items)), Total: int64(len(items)) * 10, TotalPages: 10}.VisitListTasksResponse(w)
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
