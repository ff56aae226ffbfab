package httpapi

import (
	"context"
	"strconv"

	openapi_types "github.com/oapi-codegen/runtime/types"

	"enterprise-automation/gen/api"
	"enterprise-automation/internal/auth"
	"enterprise-automation/internal/etag"
	"enterprise-automation/internal/page"
	"enterprise-automation/internal/user"
)

func toUser(u user.User) api.User {
	return api.User{
		Id: u.ID, Name: u.Name, Email: openapi_types.Email(u.Email), IsAdmin: u.IsAdmin, IsActive: u.IsActive,
		CreatedAt: u.CreatedAt.UTC(), UpdatedAt: u.UpdatedAt.UTC(),
	}
}

// actor returns the authenticated principal; the authenticate middleware guarantees one
// on every secured operation.
func actor(ctx context.Context) auth.Principal {
	p, _ := auth.PrincipalFrom(ctx)
	return p
}

func userUpdate(b *api.UserUpdate) user.UpdateParams {
	p := user.UpdateParams{Name: b.Name, Password: b.Password, CurrentPassword: b.CurrentPassword, IsAdmin: b.IsAdmin, IsActive: b.IsActive}
	if b.Email != nil {
		e := string(*b.Email)
		p.Email = &e
	}
	return p
}

// CreateUser implements POST /api/v1/users.
func (s *Server) CreateUser(ctx context.Context, req api.CreateUserRequestObject) (api.CreateUserResponseObject, error) {
	b := req.Body
	u, err := s.users.Create(ctx, actor(ctx), user.CreateParams{
		Name: b.Name, Email: string(b.Email), Password: b.Password, IsAdmin: b.IsAdmin != nil && *b.IsAdmin,
	})
	if err != nil {
		return nil, err
	}
	return api.CreateUser201JSONResponse{Body: toUser(u), Headers: api.CreateUser201ResponseHeaders{
		ETag: ptr(etag.Format(u.Version)), Location: ptr("/api/v1/users/" + strconv.FormatInt(u.ID, 10)),
	}}, nil
}

// ListUsers implements GET /api/v1/users.
func (s *Server) ListUsers(ctx context.Context, req api.ListUsersRequestObject) (api.ListUsersResponseObject, error) {
	p := req.Params
	pr, err := page.NewCursorRequest(p.Skip, p.Limit, p.Cursor)
	if err != nil {
		return nil, err
	}
	res, err := s.users.List(ctx, actor(ctx), user.ListParams{Page: pr, Q: p.Q, IsActive: p.IsActive, IsAdmin: p.IsAdmin})
	if err != nil {
		return nil, err
	}
	out := page.Map(res, toUser)
	return api.ListUsers200JSONResponse{Items: out.Items, Total: out.Total, Page: out.Page, PageSize: out.PageSize, TotalPages: out.TotalPages,
		NextCursor: nextCursor(out.NextCursor)}, nil
}

// GetCurrentUser implements GET /api/v1/users/me.
func (s *Server) GetCurrentUser(ctx context.Context, req api.GetCurrentUserRequestObject) (api.GetCurrentUserResponseObject, error) {
	a := actor(ctx)
	u, err := s.users.Get(ctx, a, a.UserID)
	if err != nil {
		return nil, err
	}
	tag := ptr(etag.Format(u.Version))
	if etag.IfNoneMatch(req.Params.IfNoneMatch).Matches(u.Version) {
		return api.GetCurrentUser304Response{Headers: api.GetCurrentUser304ResponseHeaders{ETag: tag}}, nil
	}
	return api.GetCurrentUser200JSONResponse{Body: toUser(u), Headers: api.GetCurrentUser200ResponseHeaders{ETag: tag}}, nil
}

// UpdateCurrentUser implements PATCH /api/v1/users/me.
func (s *Server) UpdateCurrentUser(ctx context.Context, req api.UpdateCurrentUserRequestObject) (api.UpdateCurrentUserResponseObject, error) {
	a := actor(ctx)
	u, err := s.users.Update(ctx, a, a.UserID, userUpdate(req.Body), etag.IfMatch(req.Params.IfMatch))
	if err != nil {
		return nil, err
	}
	return api.UpdateCurrentUser200JSONResponse{Body: toUser(u), Headers: api.UpdateCurrentUser200ResponseHeaders{ETag: ptr(etag.Format(u.Version))}}, nil
}

// GetUser implements GET /api/v1/users/{user_id}.
func (s *Server) GetUser(ctx context.Context, req api.GetUserRequestObject) (api.GetUserResponseObject, error) {
	u, err := s.users.Get(ctx, actor(ctx), req.UserId)
	if err != nil {
		return nil, err
	}
	tag := ptr(etag.Format(u.Version))
	if etag.IfNoneMatch(req.Params.IfNoneMatch).Matches(u.Version) {
		return api.GetUser304Response{Headers: api.GetUser304ResponseHeaders{ETag: tag}}, nil
	}
	return api.GetUser200JSONResponse{Body: toUser(u), Headers: api.GetUser200ResponseHeaders{ETag: tag}}, nil
}

// UpdateUser implements PATCH /api/v1/users/{user_id}.
func (s *Server) UpdateUser(ctx context.Context, req api.UpdateUserRequestObject) (api.UpdateUserResponseObject, error) {
	u, err := s.users.Update(ctx, actor(ctx), req.UserId, userUpdate(req.Body), etag.IfMatch(req.Params.IfMatch))
	if err != nil {
		return nil, err
	}
	return api.UpdateUser200JSONResponse{Body: toUser(u), Headers: api.UpdateUser200ResponseHeaders{ETag: ptr(etag.Format(u.Version))}}, nil
}

// ReplaceUser implements the deprecated PUT /api/v1/users/{user_id}, an alias of PATCH.
func (s *Server) ReplaceUser(ctx context.Context, req api.ReplaceUserRequestObject) (api.ReplaceUserResponseObject, error) {
	u, err := s.users.Update(ctx, actor(ctx), req.UserId, userUpdate(req.Body), etag.IfMatch(req.Params.IfMatch))
	if err != nil {
		return nil, err
	}
	return api.ReplaceUser200JSONResponse{Body: toUser(u), Headers: api.ReplaceUser200ResponseHeaders{ETag: ptr(etag.Format(u.Version))}}, nil
}

// DeleteUser implements DELETE /api/v1/users/{user_id}.
func (s *Server) DeleteUser(ctx context.Context, req api.DeleteUserRequestObject) (api.DeleteUserResponseObject, error) {
	if err := s.users.Delete(ctx, actor(ctx), req.UserId, etag.IfMatch(req.Params.IfMatch)); err != nil {
		return nil, err
	}
	return api.DeleteUser204Response{}, nil
}
