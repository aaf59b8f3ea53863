; Ada context clauses: `with A.B, C;` and `use A.B;` (also `limited with`, `private with`,
; `use type T`). Each named unit is one import.
(with_clause [(identifier) (selected_component)] @import.with)
(use_clause [(identifier) (selected_component)] @import.use)
