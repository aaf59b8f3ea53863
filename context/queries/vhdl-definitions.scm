; VHDL definitions. tree-sitter-vhdl ships no tags query: node names were read off parses.
; Captures: @definition.<kind> the whole declaration, @name its name, @body where the signature stops.

; An entity's signature is all of it: generics and ports are its interface.
(entity_declaration entity: (_) @name) @definition.entity
(architecture_definition architecture: (_) @name (architecture_head) @body) @definition.architecture
(architecture_definition architecture: (_) @name (concurrent_block) @body) @definition.architecture
(package_declaration package: (_) @name (package_declaration_body) @body) @definition.package
(package_definition package: (_) @name (package_definition_body) @body) @definition.package_body
(component_declaration component: (_) @name) @definition.component

; Subprograms: declarations whole, bodies up to `is`.
(subprogram_declaration (function_specification function: (_) @name)) @definition.function
(subprogram_declaration (procedure_specification procedure: (_) @name)) @definition.procedure
(subprogram_definition
  (function_specification function: (_) @name) (subprogram_head) @body) @definition.function
(subprogram_definition
  (procedure_specification procedure: (_) @name) (subprogram_head) @body) @definition.procedure

(type_declaration type: (_) @name) @definition.type
(subtype_declaration type: (_) @name) @definition.subtype

; Objects: every name of `signal a, b : t;` is a definition. Signals, constants and shared
; variables of design units are kept; those local to a process or subprogram are left out.
(signal_declaration (identifier_list (_) @name)) @definition.signal
(architecture_head (constant_declaration (identifier_list (_) @name)) @definition.constant)
(package_declaration_body (constant_declaration (identifier_list (_) @name)) @definition.constant)
(package_definition_body (constant_declaration (identifier_list (_) @name)) @definition.constant)
(architecture_head (variable_declaration "shared" (identifier_list (_) @name)) @definition.variable)
(package_declaration_body
  (variable_declaration "shared" (identifier_list (_) @name)) @definition.variable)
(package_definition_body
  (variable_declaration "shared" (identifier_list (_) @name)) @definition.variable)
