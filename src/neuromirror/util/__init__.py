"""Small tools every layer uses: git plumbing, spooling, timing, dates, sizes, errors as one line, paths,
progress, processes.

Knows nothing of archives, git-annex's semantics, the index or the commands. Imports nothing of
neuromirror outside ``util`` but ``errors`` (a bad size or too little disk is a UserError), and never
will: everything else may import it.
"""
