package httpapi

import (
	"context"

	"enterprise-automation/gen/api"
	"enterprise-automation/internal/auth"
)

var noStore = ptr("no-store")

func tokenPair(p auth.TokenPair) api.TokenPair {
	return api.TokenPair{
		AccessToken:  p.AccessToken,
		TokenType:    api.Bearer,
		ExpiresIn:    int32(p.ExpiresIn.Seconds()),
		RefreshToken: p.RefreshToken,
	}
}

// CreateToken implements POST /api/v1/auth/token (OAuth2 password grant).
func (s *Server) CreateToken(ctx context.Context, req api.CreateTokenRequestObject) (api.CreateTokenResponseObject, error) {
	pair, err := s.auth.Login(ctx, req.Body.Username, req.Body.Password)
	if err != nil {
		return nil, err
	}
	return api.CreateToken200JSONResponse{Body: tokenPair(pair), Headers: api.CreateToken200ResponseHeaders{CacheControl: noStore}}, nil
}

// RefreshToken implements POST /api/v1/auth/refresh.
func (s *Server) RefreshToken(ctx context.Context, req api.RefreshTokenRequestObject) (api.RefreshTokenResponseObject, error) {
	pair, err := s.auth.Refresh(ctx, req.Body.RefreshToken)
	if err != nil {
		return nil, err
	}
	return api.RefreshToken200JSONResponse{Body: tokenPair(pair), Headers: api.RefreshToken200ResponseHeaders{CacheControl: noStore}}, nil
}

// Logout implements POST /api/v1/auth/logout.
func (s *Server) Logout(ctx context.Context, req api.LogoutRequestObject) (api.LogoutResponseObject, error) {
	if err := s.auth.Logout(ctx, req.Body.RefreshToken); err != nil {
		return nil, err
	}
	return api.Logout204Response{}, nil
}
