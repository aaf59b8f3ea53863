; TypeScript (and TSX) definitions: JavaScript's patterns plus interfaces, type aliases, enums,
; abstract classes, namespaces and signatures. Node names follow tree-sitter-typescript's tags.scm;
; the patterns are ours. Captures: @definition.<kind> the whole declaration, @name its name,
; @body where the signature stops. An `export` (or `declare`) around a declaration belongs to it.

; Types are their whole declaration: the members are the type.
(export_statement declaration: (interface_declaration name: (_) @name)) @definition.interface
(interface_declaration name: (_) @name) @definition.interface
(export_statement declaration: (type_alias_declaration name: (_) @name)) @definition.type
(type_alias_declaration name: (_) @name) @definition.type
(export_statement declaration: (enum_declaration name: (_) @name)) @definition.enum
(enum_declaration name: (_) @name) @definition.enum

(export_statement
  declaration: (abstract_class_declaration name: (_) @name body: (_) @body)) @definition.class
(abstract_class_declaration name: (_) @name body: (_) @body) @definition.class
(method_signature name: (_) @name) @definition.method
(abstract_method_signature name: (_) @name) @definition.method
(public_field_definition name: (_) @name) @definition.field
(export_statement declaration: (function_signature name: (_) @name)) @definition.function
(ambient_declaration (function_signature name: (_) @name)) @definition.function
(function_signature name: (_) @name) @definition.function

; Namespaces and modules, up to their braces.
(export_statement declaration: (internal_module name: (_) @name body: (_) @body)) @definition.module
(internal_module name: (_) @name body: (_) @body) @definition.module
(module name: (_) @name body: (_) @body) @definition.module


(export_statement declaration: [
  (function_declaration name: (_) @name body: (_) @body)
  (generator_function_declaration name: (_) @name body: (_) @body)]) @definition.function
(function_declaration name: (_) @name body: (_) @body) @definition.function
(generator_function_declaration name: (_) @name body: (_) @body) @definition.function

(export_statement declaration: (class_declaration name: (_) @name body: (_) @body)) @definition.class
(class_declaration name: (_) @name body: (_) @body) @definition.class
(method_definition name: (_) @name body: (_) @body) @definition.method

; `const f = (x) => ...` and `const f = function () {...}` are functions; the signature stops at
; the function's body.
(export_statement declaration: (lexical_declaration (variable_declarator
  name: (identifier) @name
  value: [(arrow_function body: (_) @body) (function_expression body: (_) @body)]))) @definition.function
(lexical_declaration (variable_declarator
  name: (identifier) @name
  value: [(arrow_function body: (_) @body) (function_expression body: (_) @body)])) @definition.function
(variable_declaration (variable_declarator
  name: (identifier) @name
  value: [(arrow_function body: (_) @body) (function_expression body: (_) @body)])) @definition.function

; Other module-level bindings: `const` ones are constants, `let` and `var` variables.
(program (export_statement
  declaration: (lexical_declaration "const" (variable_declarator name: (identifier) @name))) @definition.constant)
(program (export_statement
  declaration: (lexical_declaration (variable_declarator name: (identifier) @name))) @definition.variable)
(program (lexical_declaration "const" (variable_declarator name: (identifier) @name)) @definition.constant)
(program (lexical_declaration (variable_declarator name: (identifier) @name)) @definition.variable)
(program (variable_declaration (variable_declarator name: (identifier) @name)) @definition.variable)
