; Python definitions. Node names follow tree-sitter-python's tags.scm; the patterns are ours.
; Captures: @definition.<kind> the whole declaration, @name its name, @body where the signature
; stops. A decorated definition starts at its first decorator (the wider node wins).

; Methods: functions directly in a class body; these patterns come before plain functions.
(class_definition body: (block
  (function_definition name: (identifier) @name body: (_) @body) @definition.method))
(class_definition body: (block
  (decorated_definition
    definition: (function_definition name: (identifier) @name body: (_) @body)) @definition.method))

(function_definition name: (identifier) @name body: (_) @body) @definition.function
(decorated_definition
  definition: (function_definition name: (identifier) @name body: (_) @body)) @definition.function
(class_definition name: (identifier) @name body: (_) @body) @definition.class
(decorated_definition
  definition: (class_definition name: (identifier) @name body: (_) @body)) @definition.class

; Class attributes (dataclass fields, annotated attributes).
(class_definition body: (block
  (expression_statement (assignment left: (identifier) @name)) @definition.field))

; Module-level names: UPPER_CASE ones (Latin, Greek or Cyrillic capitals) are constants by
; convention, the rest variables.
(module (expression_statement (assignment left: (identifier) @name)) @definition.constant
  (#match? @name "^_*[A-ZÀ-ÖØ-ÞΑ-ΩА-ЯЁ][A-ZÀ-ÖØ-ÞΑ-ΩА-ЯЁ0-9_]*$"))
(module (expression_statement (assignment left: (identifier) @name)) @definition.variable)
