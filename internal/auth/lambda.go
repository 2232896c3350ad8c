package auth

import (
	"context"
	"errors"
	"log/slog"

	"github.com/aws/aws-lambda-go/events"
)

// LambdaAuthorizer is an API Gateway HTTP API Lambda authorizer (payload
// 2.0, simple responses) over the same tokens the API checks. It
// authenticates only: any valid token is allowed, whatever the method or
// route, and the API enforces the token's role on every request. That keeps
// its answer a function of the Authorization header alone, which is all
// API Gateway keys its cache on; a decision by method would be replayed for
// other methods of the same token. Invalid credentials are denied (API
// Gateway answers 403 for a denial and 401 for a missing header); a storage
// error is returned so API Gateway answers 500 rather than letting the
// request through.
func LambdaAuthorizer(a Authenticator, log *slog.Logger) func(context.Context, events.APIGatewayV2CustomAuthorizerV2Request) (events.APIGatewayV2CustomAuthorizerSimpleResponse, error) {
	return func(ctx context.Context, req events.APIGatewayV2CustomAuthorizerV2Request) (events.APIGatewayV2CustomAuthorizerSimpleResponse, error) {
		header := req.Headers["authorization"]
		if header == "" {
			header = req.Headers["Authorization"]
		}
		tok, err := a.Authenticate(ctx, header)
		switch {
		case errors.Is(err, ErrMissing), errors.Is(err, ErrMalformed), errors.Is(err, ErrUnknown),
			errors.Is(err, ErrExpired), errors.Is(err, ErrRevoked):
			log.InfoContext(ctx, "request denied", "reason", err.Error(), "route", req.RouteKey)
			return events.APIGatewayV2CustomAuthorizerSimpleResponse{IsAuthorized: false}, nil
		case err != nil:
			return events.APIGatewayV2CustomAuthorizerSimpleResponse{}, err
		}
		return events.APIGatewayV2CustomAuthorizerSimpleResponse{
			IsAuthorized: true,
			Context:      map[string]any{"token_id": tok.ID, "role": string(tok.Role)},
		}, nil
	}
}
