; JavaScript definitions. Node names follow tree-sitter-javascript's tags.scm; the patterns are
; ours. Captures: @definition.<kind> the whole declaration, @name its name, @body where the
; signature stops. An `export` around a declaration belongs to it (the wider node wins).

(export_statement declaration: [
  (function_declaration name: (_) @name body: (_) @body)
  (generator_function_declaration name: (_) @name body: (_) @body)]) @definition.function
(function_declaration name: (_) @name body: (_) @body) @definition.function
(generator_function_declaration name: (_) @name body: (_) @body) @definition.function

(export_statement declaration: (class_declaration name: (_) @name body: (_) @body)) @definition.class
(class_declaration name: (_) @name body: (_) @body) @definition.class
(method_definition name: (_) @name body: (_) @body) @definition.method
(field_definition property: (_) @name) @definition.field

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
