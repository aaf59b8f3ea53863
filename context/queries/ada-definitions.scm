; Ada and SPARK definitions. tree-sitter-ada ships no tags query: node names were read off parses.
; Captures: @definition.<kind> the whole declaration, @name its name, @body where the signature stops.

; Packages: the signature is the head up to `is` (with its aspects, e.g. SPARK_Mode).
(package_declaration name: (_) @name "is" @body) @definition.package
(package_body name: (_) @name "is" @body) @definition.package_body

; Generics: the declaration starts at `generic`; instantiations are the unit they make.
(generic_package_declaration
  (package_declaration name: (_) @name "is" @body)) @definition.generic
(generic_subprogram_declaration
  [(function_specification name: (_) @name)
   (procedure_specification name: (_) @name)]) @definition.generic
(generic_instantiation "package" name: (_) @name) @definition.package
(generic_instantiation "procedure" name: (_) @name) @definition.procedure
(generic_instantiation "function" name: (_) @name) @definition.function

; Subprograms: specs (with their aspects), bodies up to `is`, expression functions, null procedures.
(subprogram_declaration (function_specification name: (_) @name)) @definition.function
(subprogram_declaration (procedure_specification name: (_) @name)) @definition.procedure
(subprogram_body (function_specification name: (_) @name) "is" @body) @definition.function
(subprogram_body (procedure_specification name: (_) @name) "is" @body) @definition.procedure
(expression_function_declaration (function_specification name: (_) @name)) @definition.function
(null_procedure_declaration (procedure_specification name: (_) @name)) @definition.procedure
(subprogram_renaming_declaration (function_specification name: (_) @name)) @definition.function
(subprogram_renaming_declaration (procedure_specification name: (_) @name)) @definition.procedure

; Types. A task or protected type sits inside a full_type_declaration whose first child is then
; not an identifier, so the plain type pattern does not take it.
(full_type_declaration . (identifier) @name) @definition.type
(private_type_declaration . (identifier) @name) @definition.type
(private_extension_declaration . (identifier) @name) @definition.type
(subtype_declaration . (identifier) @name) @definition.subtype

; Tasks and protected objects: types, single declarations, bodies.
(task_type_declaration . (identifier) @name) @definition.task
(single_task_declaration . (identifier) @name) @definition.task
(task_body . (identifier) @name "is" @body) @definition.task
(protected_type_declaration . (identifier) @name) @definition.protected
(single_protected_declaration . (identifier) @name) @definition.protected
(protected_body . (identifier) @name "is" @body) @definition.protected

; Objects declared by a package (not the locals of a subprogram). Constants before variables: on
; the same declaration the earlier pattern wins.
(package_declaration (number_declaration (identifier) @name) @definition.constant)
(package_declaration (object_declaration . (identifier) @name "constant") @definition.constant)
(package_declaration (object_declaration "," . (identifier) @name "constant") @definition.constant)
(package_declaration (object_declaration . (identifier) @name) @definition.variable)
(package_declaration (object_declaration "," . (identifier) @name) @definition.variable)
(package_body (non_empty_declarative_part
  (number_declaration (identifier) @name) @definition.constant))
(package_body (non_empty_declarative_part
  (object_declaration . (identifier) @name "constant") @definition.constant))
(package_body (non_empty_declarative_part
  (object_declaration "," . (identifier) @name "constant") @definition.constant))
(package_body (non_empty_declarative_part
  (object_declaration . (identifier) @name) @definition.variable))
(package_body (non_empty_declarative_part
  (object_declaration "," . (identifier) @name) @definition.variable))
