package httpapi

import (
	"context"

	"enterprise-automation/gen/api"
	"enterprise-automation/internal/apperr"
)

var errAgentsPending = apperr.E(apperr.Unavailable, "agents are not available yet")

func (s *Server) CreateAgent(context.Context, api.CreateAgentRequestObject) (api.CreateAgentResponseObject, error) {
	return nil, errAgentsPending
}
func (s *Server) ListAgents(context.Context, api.ListAgentsRequestObject) (api.ListAgentsResponseObject, error) {
	return nil, errAgentsPending
}
func (s *Server) GetAgent(context.Context, api.GetAgentRequestObject) (api.GetAgentResponseObject, error) {
	return nil, errAgentsPending
}
func (s *Server) UpdateAgent(context.Context, api.UpdateAgentRequestObject) (api.UpdateAgentResponseObject, error) {
	return nil, errAgentsPending
}
func (s *Server) DeleteAgent(context.Context, api.DeleteAgentRequestObject) (api.DeleteAgentResponseObject, error) {
	return nil, errAgentsPending
}
func (s *Server) CreateAgentRun(context.Context, api.CreateAgentRunRequestObject) (api.CreateAgentRunResponseObject, error) {
	return nil, errAgentsPending
}
func (s *Server) ListAgentRuns(context.Context, api.ListAgentRunsRequestObject) (api.ListAgentRunsResponseObject, error) {
	return nil, errAgentsPending
}
func (s *Server) GetAgentRun(context.Context, api.GetAgentRunRequestObject) (api.GetAgentRunResponseObject, error) {
	return nil, errAgentsPending
}
func (s *Server) CancelAgentRun(context.Context, api.CancelAgentRunRequestObject) (api.CancelAgentRunResponseObject, error) {
	return nil, errAgentsPending
}
func (s *Server) StreamAgentRunEvents(context.Context, api.StreamAgentRunEventsRequestObject) (api.StreamAgentRunEventsResponseObject, error) {
	return nil, errAgentsPending
}
