package g
r{r}