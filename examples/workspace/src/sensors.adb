package body Sensors is

   function Mean (Readings : Reading_Array) return Celsius is
      Total : Float := 0.0;
      Count : Natural := 0;
   begin
      for R of Readings loop
         if R.Valid then
            Total := Total + Float (R.Value);
            Count := Count + 1;
         end if;
      end loop;
      if Count = 0 then
         return 0.0;
      end if;
      return Celsius (Total / Float (Count));
   end Mean;

   function Any_Above (Readings : Reading_Array; Limit : Celsius) return Boolean is
   begin
      for R of Readings loop
         if R.Valid and then R.Value > Limit then
            return True;
         end if;
      end loop;
      return False;
   end Any_Above;

end Sensors;
