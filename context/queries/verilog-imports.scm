; `include "file.vh" / `include <file.vh>, and SystemVerilog `import pkg::*;` (the `::*` is dropped
; by context.symbols, so the import is the package).
(include_compiler_directive [(double_quoted_string) (include_compiler_directive_standard)] @import.include)
(package_import_item) @import.import
