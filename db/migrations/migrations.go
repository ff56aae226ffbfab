// Package migrations embeds the goose SQL migrations, which are also sqlc's schema.
package migrations

import "embed"

// FS holds every migration file, named NNNNN_verb_noun.sql.
//
//go:embed *.sql
var FS embed.FS
