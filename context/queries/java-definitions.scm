; Java definitions. Node names follow tree-sitter-java's tags.scm; the patterns are ours.
; Captures: @definition.<kind> the whole declaration (with its annotations), @name its name,
; @body where the signature stops.

(class_declaration name: (_) @name body: (_) @body) @definition.class
(record_declaration name: (_) @name body: (_) @body) @definition.class
(interface_declaration name: (_) @name body: (_) @body) @definition.interface
(annotation_type_declaration name: (_) @name body: (_) @body) @definition.interface
(enum_declaration name: (_) @name body: (_) @body) @definition.enum

(method_declaration name: (_) @name body: (_) @body) @definition.method
(method_declaration name: (_) @name) @definition.method
(constructor_declaration name: (_) @name body: (_) @body) @definition.method
(compact_constructor_declaration name: (_) @name body: (_) @body) @definition.method

; Fields: `static final` ones are constants (this pattern comes first), the rest fields; an
; interface's fields are constants too.
(field_declaration (modifiers) @_mods declarator: (variable_declarator name: (_) @name)
  (#match? @_mods "(static[^;]*final)|(final[^;]*static)")) @definition.constant
(constant_declaration declarator: (variable_declarator name: (_) @name)) @definition.constant
(field_declaration declarator: (variable_declarator name: (_) @name)) @definition.field
