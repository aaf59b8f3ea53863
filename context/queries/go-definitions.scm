; Go definitions. Node names follow tree-sitter-go's tags.scm; the patterns are ours.
; Captures: @definition.<kind> the whole declaration, @name its name, @body where the signature
; stops. `type X struct{...}` is the whole declaration; in a group, `type ( X ...; Y ... )`, each
; spec is its own (the single-spec patterns come first and their wider node wins).

(function_declaration name: (_) @name body: (_) @body) @definition.function
(function_declaration name: (_) @name) @definition.function
(method_declaration name: (_) @name body: (_) @body) @definition.method
(method_elem name: (_) @name) @definition.method

(type_declaration . (type_spec name: (_) @name type: (struct_type)) .) @definition.struct
(type_declaration . (type_spec name: (_) @name type: (interface_type)) .) @definition.interface
(type_declaration . [(type_spec name: (_) @name) (type_alias name: (_) @name)] .) @definition.type
(type_spec name: (_) @name type: (struct_type)) @definition.struct
(type_spec name: (_) @name type: (interface_type)) @definition.interface
[(type_spec name: (_) @name) (type_alias name: (_) @name)] @definition.type
(field_declaration_list (field_declaration name: (_) @name) @definition.field)

; Package-level constants and variables (locals of functions are left out).
(source_file (const_declaration . (const_spec name: (_) @name) .) @definition.constant)
(source_file (const_declaration (const_spec name: (_) @name) @definition.constant))
(source_file (var_declaration . (var_spec name: (_) @name) .) @definition.variable)
(source_file (var_declaration (var_spec name: (_) @name) @definition.variable))
