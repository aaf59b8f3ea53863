; `include "file.svh" / `include <file.svh>, and `import pkg::*;` (the `::*` is dropped by
; context.symbols, so the import is the package).
(include_compiler_directive [(quoted_string) (system_lib_string)] @import.include)
(package_import_item) @import.import
