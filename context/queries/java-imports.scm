; `import a.b.C;`, `import static a.b.C.m;`, `import a.b.*;` (the import is the package `a.b`).
(import_declaration [(scoped_identifier) (identifier)] @import.import)
