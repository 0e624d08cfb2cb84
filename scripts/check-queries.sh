#!/usr/bin/env bash
# domain/ owns every query: a raw Kysely call (or Kysely's `sql` tag) anywhere in src/
# outside src/domain/ and src/store/ fails `npm run lint`, naming each line. Add a function
# to domain/ instead, named in the domain's words.
set -euo pipefail
cd "$(dirname "$0")/.."
found=$(find src -name '*.ts' -not -path 'src/domain/*' -not -path 'src/store/*' -print0 |
  xargs -0 grep -nE \
    "\.(selectFrom|updateTable|insertInto|deleteFrom|replaceInto)\(|(^|[^.[:alnum:]_])sql(\`|\.(raw|ref|lit|id|join)\()|import \{[^}]*\bsql\b[^}]*\} from 'kysely'" ||
  true)
if [[ -n "$found" ]]; then
  echo "raw queries outside src/domain and src/store (move each into a domain/ function):" >&2
  echo "$found" >&2
  exit 1
fi
