package body Saturating with SPARK_Mode is

   function Add (A, B : Count) return Count is
   begin
      if A > Max - B then
         return Max;
      else
         return A + B;
      end if;
   end Add;

   procedure Increment (C : in out Count) is
   begin
      if C < Max then
         C := C + 1;
      end if;
   end Increment;

end Saturating;
