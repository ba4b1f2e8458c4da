"""Clinical notes: the editor's drafts, signing, co-signature and addenda; the home page's
worklist; note templates and snippets."""
