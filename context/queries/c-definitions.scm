; C definitions. Node names follow tree-sitter-c's tags.scm; the patterns are ours.
; Captures: @definition.<kind> the whole declaration, @name its name, @body where the signature stops.

; Functions: definitions up to their body, prototypes whole. A pointer result nests the
; function declarator in pointer declarators.
(function_definition
  declarator: (function_declarator declarator: (identifier) @name) body: (_) @body) @definition.function
(function_definition
  declarator: (pointer_declarator declarator: (function_declarator declarator: (identifier) @name))
  body: (_) @body) @definition.function
(function_definition
  declarator: (pointer_declarator declarator: (pointer_declarator
    declarator: (function_declarator declarator: (identifier) @name)))
  body: (_) @body) @definition.function
(declaration declarator: (function_declarator declarator: (identifier) @name)) @definition.function
(declaration declarator: (pointer_declarator
  declarator: (function_declarator declarator: (identifier) @name))) @definition.function
(declaration declarator: (pointer_declarator declarator: (pointer_declarator
  declarator: (function_declarator declarator: (identifier) @name)))) @definition.function

; Types: a struct, union or enum with a body, whole; typedefs whole.
(struct_specifier name: (type_identifier) @name body: (_)) @definition.struct
(union_specifier name: (type_identifier) @name body: (_)) @definition.struct
(enum_specifier name: (type_identifier) @name body: (_)) @definition.enum
(type_definition declarator: (type_identifier) @name) @definition.type
(type_definition declarator: (pointer_declarator declarator: (type_identifier) @name)) @definition.type
(type_definition
  declarator: (function_declarator declarator: (parenthesized_declarator
    (pointer_declarator declarator: (type_identifier) @name)))) @definition.type

; Fields of structs and unions.
(field_declaration declarator: (field_identifier) @name) @definition.field
(field_declaration declarator: (pointer_declarator declarator: (field_identifier) @name)) @definition.field
(field_declaration declarator: (array_declarator declarator: (field_identifier) @name)) @definition.field

; Macros.
(preproc_def name: (identifier) @name) @definition.macro
(preproc_function_def name: (identifier) @name) @definition.macro

; File-scope objects: `const` ones are constants (these patterns come first), the rest variables.
(translation_unit (declaration (type_qualifier) @_const
  declarator: [(identifier) @name
               (init_declarator declarator: (identifier) @name)
               (init_declarator declarator: (array_declarator declarator: (identifier) @name))
               (init_declarator declarator: (pointer_declarator declarator: (identifier) @name))
               (init_declarator declarator: (pointer_declarator
                 declarator: (array_declarator declarator: (identifier) @name)))
               (array_declarator declarator: (identifier) @name)])
  @definition.constant (#eq? @_const "const"))
(translation_unit (declaration
  declarator: [(identifier) @name
               (init_declarator declarator: (identifier) @name)
               (init_declarator declarator: (pointer_declarator declarator: (identifier) @name))
               (init_declarator declarator: (pointer_declarator
                 declarator: (array_declarator declarator: (identifier) @name)))
               (init_declarator declarator: (array_declarator declarator: (identifier) @name))
               (pointer_declarator declarator: (identifier) @name)
               (array_declarator declarator: (identifier) @name)])
  @definition.variable)
