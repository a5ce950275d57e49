"""`nnctl report`: one self-contained HTML page per run (or comparing several): what the run
folder holds (`rundata`), backprop's health in words (`health`), charts as inline SVG (`svg`),
and the page (`page`)."""
