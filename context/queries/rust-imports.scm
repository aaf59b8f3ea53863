; `use a::b::C;`, `use a::{b, c};`, `use a::b as c;` (the path), `use a::*;` (the `::*` is dropped
; by context.symbols), and `extern crate x;`.
(use_declaration
  argument: [(scoped_identifier) (identifier) (scoped_use_list) (use_wildcard) (use_list)] @import.use)
(use_declaration argument: (use_as_clause path: (_) @import.use))
(extern_crate_declaration name: (_) @import.import)
