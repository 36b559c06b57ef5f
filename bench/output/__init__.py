"""Output: one number formatter and table writer (format), text/CSV/JSON rendering (render), the report and its
figures. Imports analysis and below."""
