package httpapi

import (
	"context"
	"strconv"

	"enterprise-automation/gen/api"
	"enterprise-automation/internal/apikey"
	"enterprise-automation/internal/page"
)

func toScopes(in []string) []api.Scope {
	out := make([]api.Scope, len(in))
	for i, s := range in {
		out[i] = api.Scope(s)
	}
	return out
}

func toAPIKey(k apikey.Key) api.ApiKey {
	return api.ApiKey{
		Id: k.ID, Name: k.Name, Prefix: k.Prefix, Scopes: toScopes(k.Scopes), CreatedAt: k.CreatedAt.UTC(),
		ExpiresAt: nullableTime(k.ExpiresAt), LastUsedAt: nullableTime(k.LastUsedAt), RevokedAt: nullableTime(k.RevokedAt),
	}
}

// CreateApiKey implements POST /api/v1/api-keys.
func (s *Server) CreateApiKey(ctx context.Context, req api.CreateApiKeyRequestObject) (api.CreateApiKeyResponseObject, error) {
	b := req.Body
	p := apikey.CreateParams{Name: b.Name, Scopes: make([]string, len(b.Scopes))}
	for i, sc := range b.Scopes {
		p.Scopes[i] = string(sc)
	}
	if b.ExpiresAt.IsSpecified() && !b.ExpiresAt.IsNull() {
		t := b.ExpiresAt.MustGet()
		p.ExpiresAt = &t
	}
	k, err := s.apiKeys.Create(ctx, actor(ctx), p)
	if err != nil {
		return nil, err
	}
	a := toAPIKey(k.Key)
	return api.CreateApiKey201JSONResponse{
		Body: api.ApiKeyCreated{
			Id: a.Id, Name: a.Name, Prefix: a.Prefix, Scopes: a.Scopes, CreatedAt: a.CreatedAt,
			ExpiresAt: a.ExpiresAt, LastUsedAt: a.LastUsedAt, RevokedAt: a.RevokedAt, Key: k.Secret,
		},
		Headers: api.CreateApiKey201ResponseHeaders{Location: ptr("/api/v1/api-keys/" + strconv.FormatInt(k.ID, 10))},
	}, nil
}

// ListApiKeys implements GET /api/v1/api-keys.
func (s *Server) ListApiKeys(ctx context.Context, req api.ListApiKeysRequestObject) (api.ListApiKeysResponseObject, error) {
	p := req.Params
	res, err := s.apiKeys.List(ctx, actor(ctx), apikey.ListParams{Page: page.NewRequest(p.Skip, p.Limit), UserID: p.UserId})
	if err != nil {
		return nil, err
	}
	out := page.Map(res, toAPIKey)
	return api.ListApiKeys200JSONResponse{Items: out.Items, Total: out.Total, Page: out.Page, PageSize: out.PageSize, TotalPages: out.TotalPages}, nil
}

// GetApiKey implements GET /api/v1/api-keys/{key_id}.
func (s *Server) GetApiKey(ctx context.Context, req api.GetApiKeyRequestObject) (api.GetApiKeyResponseObject, error) {
	k, err := s.apiKeys.Get(ctx, actor(ctx), req.KeyId)
	if err != nil {
		return nil, err
	}
	return api.GetApiKey200JSONResponse(toAPIKey(k)), nil
}

// RevokeApiKey implements DELETE /api/v1/api-keys/{key_id}.
func (s *Server) RevokeApiKey(ctx context.Context, req api.RevokeApiKeyRequestObject) (api.RevokeApiKeyResponseObject, error) {
	if err := s.apiKeys.Revoke(ctx, actor(ctx), req.KeyId); err != nil {
		return nil, err
	}
	return api.RevokeApiKey204Response{}, nil
}
