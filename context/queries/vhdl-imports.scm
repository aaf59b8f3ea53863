; VHDL context clauses: `library ieee;` and `use ieee.numeric_std.all;` (the `.all` is dropped by
; context.symbols, so the import is the unit `ieee.numeric_std`).
(library_clause (logical_name_list (_) @import.library))
(use_clause (selected_name_list (_) @import.use))
