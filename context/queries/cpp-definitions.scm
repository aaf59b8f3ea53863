; C++ definitions: C's patterns (tree-sitter-cpp extends tree-sitter-c) and classes, namespaces,
; methods, templates, aliases. Captures: @definition.<kind> the whole declaration, @name its name,
; @body where the signature stops. Patterns for methods and templates come first: on the same
; name, the wider declaration (the template) and then the earlier pattern win.

; Templates: the declaration starts at `template <...>`.
(template_declaration (function_definition
  declarator: (function_declarator declarator: [(identifier) (field_identifier)] @name)
  body: (_) @body)) @definition.function
(template_declaration (function_definition
  declarator: (function_declarator declarator: (qualified_identifier name: (_) @name))
  body: (_) @body)) @definition.method
(template_declaration (declaration
  declarator: (function_declarator declarator: (identifier) @name))) @definition.function
(template_declaration (class_specifier name: (type_identifier) @name body: (_))) @definition.class
(template_declaration (struct_specifier name: (type_identifier) @name body: (_))) @definition.struct
(template_declaration (alias_declaration name: (type_identifier) @name)) @definition.type

; Methods: inside a class body (defined or declared, constructors too), and defined out of line
; as `Class::method` (the name is the method's own).
(field_declaration_list (function_definition
  declarator: (function_declarator
    declarator: [(field_identifier) (identifier) (destructor_name) (operator_name)] @name)
  body: (_) @body) @definition.method)
(field_declaration_list (field_declaration
  declarator: (function_declarator
    declarator: [(field_identifier) (identifier) (destructor_name) (operator_name)] @name))
  @definition.method)
(field_declaration_list (declaration
  declarator: (function_declarator declarator: [(identifier) (destructor_name)] @name))
  @definition.method)
(function_definition
  declarator: (function_declarator declarator: (qualified_identifier name: (_) @name))
  body: (_) @body) @definition.method
(function_definition
  declarator: (reference_declarator (function_declarator
    declarator: (qualified_identifier name: (_) @name)))
  body: (_) @body) @definition.method
(function_definition
  declarator: (pointer_declarator declarator: (function_declarator
    declarator: (qualified_identifier name: (_) @name)))
  body: (_) @body) @definition.method

; Classes, namespaces and aliases. A class or struct body is mostly declarations, so its
; signature is the whole of it (cut to SIGNATURE_MAX_LINES); a namespace's stops at its braces.
(class_specifier name: (type_identifier) @name body: (_)) @definition.class
(struct_specifier name: (type_identifier) @name body: (_)) @definition.struct
(namespace_definition name: (_) @name body: (_) @body) @definition.module
(alias_declaration name: (type_identifier) @name) @definition.type


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
