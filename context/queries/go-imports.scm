; `import "fmt"`, `import ( "a"; x "b/c" )`: the import path without quotes.
(import_spec path: (_) @import.import)
