; `import x from "m"`, `import "m"`, `export ... from "m"`, `require("m")` and `import("m")`: the
; module string without quotes.
(import_statement source: (string) @import.import)
(export_statement source: (string) @import.import)
(call_expression
  function: (identifier) @_require
  arguments: (arguments . (string) @import.import .)
  (#eq? @_require "require"))
(call_expression function: (import) arguments: (arguments . (string) @import.import .))
