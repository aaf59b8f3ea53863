; `import x from "m"`, `import type {T} from "m"`, `import x = require("m")`, `export ... from "m"`,
; `require("m")` and `import("m")`: the module string without quotes.
(import_statement source: (string) @import.import)
(export_statement source: (string) @import.import)
(import_require_clause source: (string) @import.import)
(call_expression
  function: (identifier) @_require
  arguments: (arguments . (string) @import.import .)
  (#eq? @_require "require"))
(call_expression function: (import) arguments: (arguments . (string) @import.import .))
