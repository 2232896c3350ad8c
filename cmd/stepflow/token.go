package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"stepflow/internal/auth"
	"stepflow/internal/awsclient"
	"stepflow/internal/id"
	"stepflow/internal/store"
)

const tokenUsage = `Usage: stepflow token create --name NAME [--role reader|operator] [--ttl DURATION] [--token-table T]
       stepflow token revoke TOKEN_ID [--token-table T]
       stepflow token list [--token-table T]
`

// tokenCmd manages API tokens directly in the token table, with your own
// AWS credentials (or the endpoint in AWS_ENDPOINT_URL): only this tool
// may write there; the authorizer and the API only read it.
func tokenCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, tokenUsage)
		return exitUsage
	}
	fs := flag.NewFlagSet("token "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	table := fs.String("token-table", envOr("STEPFLOW_TOKEN_TABLE", "stepflow-tokens"), "DynamoDB table of API tokens (or STEPFLOW_TOKEN_TABLE; the TokenTableName output on AWS)")
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
	if fs.NArg() > 0 {
		fmt.Fprint(stderr, tokenUsage)
		return exitUsage
	}
	cfg, err := awsclient.Load(ctx, awsclient.EnvEndpoint("DYNAMODB") != "")
	if err != nil {
		fmt.Fprintf(stderr, "stepflow token: %v\n", err)
		return exitError
	}
	tokens := store.NewTokens(awsclient.DynamoDB(cfg, ""), *table)
	switch sub {
	case "create":
		switch {
		case *name == "":
			fmt.Fprint(stderr, "stepflow token create: --name is required\n"+tokenUsage)
			return exitUsage
		case *ttl < 0:
			fmt.Fprint(stderr, "stepflow token create: --ttl must not be negative\n"+tokenUsage)
			return exitUsage
		}
		tok, cred, err := auth.New(id.NewGenerator(nil, nil), *name, auth.Role(*role), time.Now(), *ttl)
		if err != nil {
			fmt.Fprintf(stderr, "stepflow token: --role: %v\n", err)
			return exitUsage
		}
		if err := tokens.PutTokenIfAbsent(ctx, tok); err != nil {
			fmt.Fprintf(stderr, "stepflow token: %v\n", err)
			return exitError
		}
		fmt.Fprintf(stdout, "token %s (%s, %s) created; it is shown only now:\n%s\n", tok.ID, tok.Role, tok.Name, cred)
		return 0
	case "revoke":
		if tokenID == "" {
			fmt.Fprint(stderr, tokenUsage)
			return exitUsage
		}
		if err := tokens.RevokeToken(ctx, tokenID, time.Now()); err != nil {
			fmt.Fprintf(stderr, "stepflow token: %v\n", err)
			return exitError
		}
		fmt.Fprintf(stdout, "token %s revoked\n", tokenID)
		return 0
	case "list":
		list, err := tokens.ListTokens(ctx)
		if err != nil {
			fmt.Fprintf(stderr, "stepflow token: %v\n", err)
			return exitError
		}
		printTokens(stdout, list)
		return 0
	}
	fmt.Fprint(stderr, tokenUsage)
	return exitUsage
}

// printTokens prints one line per token; never its secret or hash.
func printTokens(w io.Writer, list []auth.Token) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tROLE\tCREATED\tEXPIRES\tREVOKED")
	stamp := func(t *time.Time, none string) string {
		if t == nil {
			return none
		}
		return t.UTC().Format(time.RFC3339)
	}
	for _, t := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Role, stamp(&t.CreatedAt, ""), stamp(t.ExpiresAt, "never"), stamp(t.RevokedAt, "-"))
	}
	_ = tw.Flush()
}
