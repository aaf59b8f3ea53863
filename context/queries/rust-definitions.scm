; Rust definitions. Node names follow tree-sitter-rust's tags.scm; the patterns are ours.
; Captures: @definition.<kind> the whole item, @name its name, @body where the signature stops.

; Methods: functions in an impl or trait body; these patterns come before plain functions.
(impl_item body: (declaration_list
  (function_item name: (_) @name body: (_) @body) @definition.method))
(trait_item body: (declaration_list
  (function_item name: (_) @name body: (_) @body) @definition.method))
(trait_item body: (declaration_list (function_signature_item name: (_) @name) @definition.method))
(function_item name: (_) @name body: (_) @body) @definition.function
(function_signature_item name: (_) @name) @definition.function

; Types: structs and enums whole (their fields and variants are the type), traits up to the body.
(struct_item name: (_) @name) @definition.struct
(union_item name: (_) @name) @definition.struct
(enum_item name: (_) @name) @definition.enum
(type_item name: (_) @name) @definition.type
(trait_item name: (_) @name body: (_) @body) @definition.trait
(field_declaration_list (field_declaration name: (_) @name) @definition.field)

; Modules (inline ones up to their braces; `mod x;` whole), macros, consts and statics.
(mod_item name: (_) @name body: (_) @body) @definition.module
(mod_item name: (_) @name) @definition.module
(macro_definition name: (_) @name) @definition.macro
(const_item name: (_) @name) @definition.constant
(static_item name: (_) @name) @definition.variable
