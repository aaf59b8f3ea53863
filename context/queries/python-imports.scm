; `import a.b, c as d` (each module), `from a.b import x` and `from . import x` (the module the
; names come from). `from __future__ import ...` is a compiler directive, not a dependency.
(import_statement name: (dotted_name) @import.import)
(import_statement name: (aliased_import name: (dotted_name) @import.import))
(import_from_statement module_name: (_) @import.import)
