package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"stepflow/internal/auth"
	"stepflow/internal/awsclient"
	"stepflow/internal/id"
	"stepflow/internal/store"
)

// tokenCmd manages API tokens directly in the table (with your AWS
// credentials, or the endpoint in AWS_ENDPOINT_URL):
//
//	stepflow token create --name NAME [--role reader|operator] [--ttl 720h] [--table T]
//	stepflow token revoke TOKEN_ID [--table T]
func tokenCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	usage := "Usage: stepflow token create --name NAME [--role reader|operator] [--ttl DURATION] [--table T]\n       stepflow token revoke TOKEN_ID [--table T]\n"
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	fs := flag.NewFlagSet("token "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	table := fs.String("table", envOr("STEPFLOW_TABLE", "stepflow"), "DynamoDB table (or STEPFLOW_TABLE)")
	name := fs.String("name", "", "who or what the token is for")
	role := fs.String("role", string(auth.Reader), "reader (may read) or operator (may also start, cancel, retry, redrive)")
	ttl := fs.Duration("ttl", 0, "lifetime, such as 720h (default: until revoked)")
	sub, rest := args[0], args[1:]
	var tokenID string
	if sub == "revoke" && len(rest) > 0 && rest[0] != "" && rest[0][0] != '-' {
		tokenID, rest = rest[0], rest[1:]
	}
	if err := fs.Parse(rest); err != nil {
		return exitUsage
	}
	cfg, err := awsclient.Load(ctx, awsclient.EnvEndpoint("DYNAMODB") != "")
	if err != nil {
		fmt.Fprintf(stderr, "stepflow token: %v\n", err)
		return exitError
	}
	st := store.New(awsclient.DynamoDB(cfg, ""), *table)
	switch sub {
	case "create":
		if *name == "" || *ttl < 0 {
			fmt.Fprint(stderr, usage)
			return exitUsage
		}
		tok, cred, err := auth.New(id.NewGenerator(nil, nil), *name, auth.Role(*role), time.Now(), *ttl)
		if err != nil {
			fmt.Fprintf(stderr, "stepflow token: --role: %v\n", err)
			return exitUsage
		}
		if err := st.PutToken(ctx, tok); err != nil {
			fmt.Fprintf(stderr, "stepflow token: %v\n", err)
			return exitError
		}
		fmt.Fprintf(stdout, "token %s (%s, %s) created; it is shown only now:\n%s\n", tok.ID, tok.Role, tok.Name, cred)
		return 0
	case "revoke":
		if tokenID == "" {
			fmt.Fprint(stderr, usage)
			return exitUsage
		}
		if err := st.RevokeToken(ctx, tokenID, time.Now()); err != nil {
			fmt.Fprintf(stderr, "stepflow token: %v\n", err)
			return exitError
		}
		fmt.Fprintf(stdout, "token %s revoked\n", tokenID)
		return 0
	}
	fmt.Fprint(stderr, usage)
	return exitUsage
}
