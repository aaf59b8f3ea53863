; SystemVerilog definitions (tree-sitter-systemverilog). The grammar ships no tags query.
; Captures: @definition.<kind> the whole declaration, @name its name, @signature the header the
; signature ends with, @body where the signature stops.

; Modules, interfaces, programs: the signature is the header, with parameters and ANSI ports.
(module_declaration
  [(module_ansi_header name: (_) @name) (module_nonansi_header name: (_) @name)] @signature
) @definition.module
(interface_declaration
  [(interface_ansi_header name: (_) @name) (interface_nonansi_header name: (_) @name)] @signature
) @definition.interface
(program_declaration
  [(program_ansi_header name: (_) @name) (program_nonansi_header name: (_) @name)] @signature
) @definition.module

; Packages and classes: the signature stops at the first item.
(package_declaration name: (_) @name (package_item) @body) @definition.package
(package_declaration name: (_) @name) @definition.package
(class_declaration name: (_) @name (class_item) @body) @definition.class
(class_declaration name: (_) @name) @definition.class

; Functions and tasks: up to the first statement (the ports are declared before it). Inside a
; class they are methods; these patterns come first so that they win.
(class_method (function_declaration
  (function_body_declaration name: (_) @name (function_statement_or_null) @body)) @definition.method)
(class_method (function_declaration
  (function_body_declaration name: (_) @name)) @definition.method)
(class_method (task_declaration
  (task_body_declaration name: (_) @name (statement_or_null) @body)) @definition.method)
(class_method (task_declaration
  (task_body_declaration name: (_) @name)) @definition.method)
(function_declaration
  (function_body_declaration name: (_) @name (function_statement_or_null) @body)
) @definition.function
(function_declaration (function_body_declaration name: (_) @name)) @definition.function
(task_declaration
  (task_body_declaration name: (_) @name (statement_or_null) @body)) @definition.task
(task_declaration (task_body_declaration name: (_) @name)) @definition.task

; typedefs: a struct or an enum by what it names, any other type as a type.
(type_declaration (data_type (struct_union)) type_name: (_) @name) @definition.struct
(type_declaration (data_type "enum") type_name: (_) @name) @definition.enum
(type_declaration type_name: (_) @name) @definition.type

; Parameters of a module body or package, and `define macros.
(local_parameter_declaration
  (list_of_param_assignments (param_assignment . (simple_identifier) @name))) @definition.constant
(module_item (parameter_declaration
  (list_of_param_assignments (param_assignment . (simple_identifier) @name))) @definition.constant)
(package_item (parameter_declaration
  (list_of_param_assignments (param_assignment . (simple_identifier) @name))) @definition.constant)
(text_macro_definition (text_macro_name . (simple_identifier) @name)) @definition.macro
