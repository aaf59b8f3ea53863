; Verilog definitions (tree-sitter-verilog, which also parses much of SystemVerilog). The grammar
; ships no tags query. Captures: @definition.<kind> the whole declaration, @name its name,
; @signature the header the signature ends with, @body where the signature stops.

; Modules and interfaces: the signature is the header, with parameters and ANSI ports.
(module_declaration
  (module_header (simple_identifier) @name) . [(module_ansi_header) (module_nonansi_header)] @signature
) @definition.module
(module_declaration (module_header (simple_identifier) @name)) @definition.module
(interface_declaration
  [(interface_ansi_header (interface_identifier) @name)
   (interface_nonansi_header (interface_identifier) @name)] @signature) @definition.interface
(program_declaration
  [(program_ansi_header (program_identifier) @name)
   (program_nonansi_header (program_identifier) @name)] @signature) @definition.module

; SystemVerilog packages and classes: the signature stops at the first item.
(package_declaration (package_identifier) @name . (_) @body) @definition.package
(package_declaration (package_identifier) @name) @definition.package
(class_declaration (class_identifier) @name (class_item) @body) @definition.class
(class_declaration (class_identifier) @name) @definition.class

; Functions and tasks: up to the first statement (the ports are declared before it). Inside a
; class they are methods; these patterns come first so that they win.
(class_method (function_declaration
  (function_body_declaration (function_identifier) @name (function_statement_or_null) @body))
  @definition.method)
(class_method (function_declaration
  (function_body_declaration (function_identifier) @name)) @definition.method)
(class_method (task_declaration
  (task_body_declaration (task_identifier) @name (statement_or_null) @body)) @definition.method)
(class_method (task_declaration
  (task_body_declaration (task_identifier) @name)) @definition.method)
(function_declaration
  (function_body_declaration (function_identifier) @name (function_statement_or_null) @body)
) @definition.function
(function_declaration (function_body_declaration (function_identifier) @name)) @definition.function
(task_declaration
  (task_body_declaration (task_identifier) @name (statement_or_null) @body)) @definition.task
(task_declaration (task_body_declaration (task_identifier) @name)) @definition.task

; typedefs: a struct or an enum by what it names, any other type as a type.
(type_declaration (data_type (struct_union)) (simple_identifier) @name) @definition.struct
(type_declaration (data_type (enum_base_type)) (simple_identifier) @name) @definition.enum
(type_declaration (data_type "enum") (simple_identifier) @name) @definition.enum
(type_declaration (simple_identifier) @name) @definition.type

; Parameters of a module body or package, and `define macros.
(local_parameter_declaration
  (list_of_param_assignments (param_assignment (parameter_identifier) @name))) @definition.constant
(package_or_generate_item_declaration (parameter_declaration
  (list_of_param_assignments (param_assignment (parameter_identifier) @name)))) @definition.constant
(text_macro_definition (text_macro_name (text_macro_identifier) @name)) @definition.macro
