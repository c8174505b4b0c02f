"""The control plane: workbook schema, template, openpyxl reader, validation, JSON snapshot, loader."""
